"""benchmarks/gpu_check.py runs on the CPU as a smoke test (tiny model): every stage, the JVP encoder
against one backward per example, a short training run, a model split by accelerate's hooks; all
checks pass."""
import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_on_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--tiny", "--device", "cpu", "--rows", "16", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    names = [row["name"] for row in result["rows"]]
    assert {"train_seed", "evaluate_encoder", "decoder_base", "decoder_cells", "rewrite_model"} <= set(names)
    assert {f"cpu + cpu: {key}" for key in ("gradiend", "gradients", "encoded", "rewritten", "logits")} <= set(names)
    assert all(row["ok"] for row in result["rows"]), result["rows"]
    assert result["dtype"] == "float32" and result["device"] == "cpu"
