"""colorpipe's PyTorch engine: the worker process Node starts per device (worker.py), the network built from
colorpipe's layer table (net.py) and one rank's training (trainer.py)."""
