"""The clinic box has no TensorFlow: importing cxr_edge and its CLI must not load it."""

import subprocess
import sys

CHECK = """
import sys
import cxr_edge, cxr_edge.cli, cxr_edge.inputs.images, cxr_edge.labels, cxr_edge.models.interpreter
from click.testing import CliRunner
result = CliRunner().invoke(cxr_edge.cli.main, ["--version"])
assert result.exit_code == 0, result.output
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print("LOADED:", loaded)
sys.exit(1 if loaded else 0)
"""


def test_cxr_edge_never_imports_tensorflow_or_keras():
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "LOADED: []" in proc.stdout
