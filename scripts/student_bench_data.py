#!/usr/bin/env python3
"""Writes a MIMIC-III-sized synthetic data folder for scripts/bench-student.sh when `leader synth` /
`leader preprocess` are not available: vocab.json (131 medications, 1958 diagnoses, 1430 procedures,
5 profile fields), train/valid/test.jsonl split 80/10/10. Visits per patient 1 + geometric (mean ~1.3,
capped at 40), per visit ~10 diagnoses, ~4 procedures, ~11 medications, as in MIMIC-III.
Usage: student_bench_data.py OUT_DIR [PATIENTS]"""
import json, os, random, sys

out = sys.argv[1]
patients = int(sys.argv[2]) if len(sys.argv) > 2 else 46520
rng = random.Random(42)
M, D, P = 131, 1958, 1430
fields = {"ETHNICITY": 40, "INSURANCE": 5, "LANGUAGE": 30, "MARITAL_STATUS": 7, "RELIGION": 20}
vocab = {
    "medications": [{"code": f"A{i:03d}", "name": f"drug {i}"} for i in range(M)],
    "diagnoses": [{"code": f"{i:04d}", "name": f"diagnosis {i}"} for i in range(D)],
    "procedures": [{"code": f"{i:04d}", "name": f"procedure {i}"} for i in range(P)],
    "profile": {f: [f"{f.lower()} {j}" for j in range(n)] for f, n in fields.items()},
}
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "vocab.json"), "w") as f:
    json.dump(vocab, f)

def codes(n_vocab, mean, prefix_fmt):
    k = max(1, min(int(rng.expovariate(1 / mean)) + 1, 60))
    return [prefix_fmt(i) for i in sorted(set(int(n_vocab * rng.random() ** 3) for _ in range(k)))]

def record(s):
    n = 1
    while rng.random() < 0.25 and n < 40:
        n += 1
    visits = [
        {
            "hadm_id": 100000 + 50 * s + v,
            "admittime": "2100-01-01 00:00:00",
            "diagnoses": codes(D, 10, lambda i: f"{i:04d}"),
            "procedures": codes(P, 4, lambda i: f"{i:04d}") if rng.random() < 0.85 else [],
            "medications": codes(M, 11, lambda i: f"A{i:03d}"),
        }
        for v in range(n)
    ]
    profile = {f: f"{f.lower()} {rng.randrange(n)}" for f, n in fields.items()}
    return {"subject_id": s, "visits": visits, "profile": profile, "labels": visits[-1]["medications"], "prompt": ""}

n_train, n_valid = int(0.8 * patients), int(0.1 * patients)
files = {name: open(os.path.join(out, f"{name}.jsonl"), "w") for name in ("train", "valid", "test")}
for s in range(patients):
    name = "train" if s < n_train else "valid" if s < n_train + n_valid else "test"
    files[name].write(json.dumps(record(s)) + "\n")
for f in files.values():
    f.close()
