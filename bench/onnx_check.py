#!/usr/bin/env python3
"""Dev check (not in npm test: CI has no python onnx): onnx's own checker, with full shape inference, on a
file `pipe export` wrote. On Debian: `apt-get install python3-onnx` (1.12: opsets up to 17).

Usage: /usr/bin/python3 bench/onnx_check.py model.onnx [more.onnx ...]
Prints one JSON line per file: {"file", "ok", "ir_version", "opset", "inputs", "outputs", "metadata_keys"}; exits
non-zero if any file fails.
"""
import json
import sys

import onnx


def dims(v):
    return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]


def main(paths):
    failed = 0
    for path in paths:
        out = {"file": path, "onnx": onnx.__version__}
        try:
            model = onnx.load(path)
            onnx.checker.check_model(model, full_check=True)
            out.update(
                ok=True,
                ir_version=model.ir_version,
                opset=[(o.domain, o.version) for o in model.opset_import],
                inputs={i.name: dims(i) for i in model.graph.input},
                outputs={o.name: dims(o) for o in model.graph.output},
                nodes=len(model.graph.node),
                metadata_keys=[p.key for p in model.metadata_props],
            )
        except Exception as e:  # the checker's own exception types vary between onnx versions
            failed += 1
            out.update(ok=False, error=str(e).splitlines()[0] if str(e) else type(e).__name__)
        print(json.dumps(out))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
