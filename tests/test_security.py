"""Security lint of the package: bandit finds nothing (each remaining finding is justified where it
arises, with `# nosec <test> - reason`), and every torch.load refuses pickled code."""

import ast
import subprocess
import sys

from tests.helpers import REPO


def test_bandit_is_clean_over_the_package():
    result = subprocess.run([sys.executable, "-m", "bandit", "-q", "-r", "crossnet_dist", "-f", "txt"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_torch_load_is_weights_only():
    offenders = []
    for path in sorted((REPO / "crossnet_dist").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if flags.get("weights_only") != "True":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders
