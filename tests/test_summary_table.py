"""results/summary.tex: per experiment a booktabs table whose numbers are those of the decoder summary."""
import pandas as pd

from gradiend import stages
from gradiend.util.io import write_json

BASE_PROBS = {"F": {"F": 0.894, "M": 0.067}, "M": {"F": 0.0146, "M": 0.9477}}  # rows of class -> P(class)


def _entry(target, strengthen, lr, ff, value, base_value, lms, fallback=False):
    return {"target_class": target, "strengthen": strengthen, "learning_rate": lr, "feature_factor": ff,
            "cell": f"lr~{lr:g}_ff~{ff:g}", "value": value, "base_value": base_value, "lms": lms, "base_lms": 0.316,
            "fallback": fallback}


def write_inputs(folder):
    """The files one experiment's summary reads; the decoder summary's metrics follow BASE_PROBS."""
    decoder = {
        "F": _entry("F", True, 0.03, 1.0, 0.5236, BASE_PROBS["M"]["F"], 0.3171),
        "F_weaken": _entry("F", False, 0.02, -1.0, 0.7346, 1 - BASE_PROBS["F"]["F"], 0.3141),
        "M": _entry("M", True, 0.005, -1.0, 0.069, BASE_PROBS["F"]["M"], 0.2, fallback=True),
        "policy": {"name": "lms_threshold", "ratio": 0.99}, "skipped": ["M_weaken"],
        "base": {"lms": 0.316, "probs_by_dataset": BASE_PROBS},
    }
    choice = {"seed": 2, "converged": True, "convergent_seeds": [0, 2], "scores": {"2": {"test_correlation": 0.98765}}}
    paths = {"data_summaries": folder / "data.json", "seed_choices": folder / "seed.json",
             "decoder_summaries": folder / "decoder.json"}
    for path, content in zip(paths.values(), ({"rows": 800}, choice, decoder)):
        write_json(path, content)
    return {key: [str(path)] for key, path in paths.items()}, decoder


def body_rows(tex):
    """The cells of each table row between \\midrule and \\bottomrule, class carried down blank rows."""
    lines = tex[tex.index(r"\midrule") + len(r"\midrule"):tex.index(r"\bottomrule")].strip().splitlines()
    rows, target = [], None
    for line in lines:
        cells = [c.strip() for c in line.removesuffix(r"\\").split("&")]
        target = cells[0] or target
        rows.append([target, *cells[1:]])
    return rows


def test_summary_tex_holds_the_decoder_summary_numbers(tmp_path):
    inputs, decoder = write_inputs(tmp_path)
    config = {"gender_en": {"name": "gender_en", "base_model": "bert-base-cased", "seeds": [0, 1, 2],
                            "data": {"target_classes": ["F", "M"],
                                     "feature_targets": [{"id": "F", "targets": ["she"]},
                                                         {"id": "M", "targets": ["he", "him"]}]}}}
    csv, tex_path = tmp_path / "summary.csv", tmp_path / "summary.tex"
    stages.summary(config, experiments=["gender_en"], **inputs, csv=str(csv), tex=str(tex_path))
    tex = tex_path.read_text()
    assert r"\usepackage{booktabs}" in tex.splitlines()[0]
    assert tex.count(r"\begin{table}") == 1 and r"\label{tab:gradiend:gender_en}" in tex
    assert r"\toprule" in tex and r"\hline" not in tex
    assert r"gender\_en (bert-base-cased)" in tex and "seed 2 (2/3 seeds converged, test $r = 0.988$)" in tex
    header = tex[tex.index(r"\toprule"):tex.index(r"\midrule")]
    assert "Target & Direction & lr & ff & base & rewritten & base & rewritten" in header
    # P(target): strengthen reads the other class's rows, weaken the class's own rows (1 - metric)
    expected = [
        [r"F (\textit{she})", "strengthen", "0.03", "$+1$", f"{BASE_PROBS['M']['F']:.3f}",
         f"{decoder['F']['value']:.3f}", "0.316", "0.317"],
        [r"F (\textit{she})", "weaken", "0.02", "$-1$", f"{BASE_PROBS['F']['F']:.3f}",
         f"{1 - decoder['F_weaken']['value']:.3f}", "0.316", "0.314"],
        [r"M (\textit{he/him})", "strengthen", r"0.005$^\dagger$", "$-1$", f"{BASE_PROBS['F']['M']:.3f}",
         f"{decoder['M']['value']:.3f}", "0.316", "0.200"],
        [r"M (\textit{he/him})", "weaken", "--", "--", "--", "--", "--", "--"],  # skipped: not in the grid
    ]
    assert body_rows(tex) == expected
    assert [r[4:6] for r in expected[:3]] == [["0.015", "0.524"], ["0.894", "0.265"], ["0.067", "0.069"]]
    assert r"$^\dagger$No cell kept the LMS threshold" in tex
    # the CSV holds the same numbers, unrounded
    row = pd.read_csv(csv).iloc[0]
    assert (row["c0"], row["c0_targets"], row["c1_targets"], row["chosen_seed"]) == ("F", "she", "he/him", 2)
    assert row["c0_base_probability"] == BASE_PROBS["M"]["F"] and row["c0_probability"] == decoder["F"]["value"]
    assert row["c0_weaken_probability"] == 1 - decoder["F_weaken"]["value"]
    assert row["c0_weaken_base_probability"] == 1 - (1 - BASE_PROBS["F"]["F"])
    assert row["c1_cell"] == "lr~0.005_ff~-1" and bool(row["c1_fallback"]) and pd.isna(row["c1_weaken_cell"])
