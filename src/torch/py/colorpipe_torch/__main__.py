"""`python -m colorpipe_torch`: the worker process (src/torch/worker.ts starts it)."""
from .worker import main

main()
