from panorama_pdac.figures import plot_training_curves
from panorama_pdac.jobs import run_job


def main(smk):
    p = smk.params
    runs = {"stage 1": {f"fold {f}": log for f, log in zip(p.folds, smk.input.stage1)}}
    logs = iter(smk.input.stage2)  # expand() order: variant, fold, step
    for v in p.variants:
        for f in p.folds:
            for s in p.steps:
                runs.setdefault(f"stage 2 {v} step {s}", {})[f"fold {f}"] = next(logs)
    plot_training_curves(runs, smk.output[0])


if __name__ == "__main__":
    run_job(snakemake, main)
