# Post-processing, cross-validated metrics, figures and Table 4.


rule postprocess_cv:
    input:
        cv=expand("results/stage2/{{variant}}/cv/fold_{fold}.tsv", fold=FOLDS),
        rois="results/stage1/rois.tsv",
        cases="results/dataset/cases.tsv",
    output:
        detections="results/evaluation/{variant}/detections.tsv",
    log:
        "results/logs/evaluation/postprocess_cv_{variant}.log",
    benchmark:
        "results/benchmarks/evaluation/postprocess_cv_{variant}.tsv"
    conda:
        "../../envs/evaluation.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        settings=EV["postprocess"],
    script:
        "../scripts/postprocess_cv.py"


# The only step that reads the full-size detection and label maps for the metrics: its per-case lesion
# results serve every fusion rule and bootstrap, so changing evaluation.fusion reruns evaluate_cv alone.
rule match_lesions_cv:
    input:
        detections="results/evaluation/{variant}/detections.tsv",
        cases="results/dataset/cases.tsv",
    output:
        lesions="results/evaluation/{variant}/lesion_results.json",
    log:
        "results/logs/evaluation/match_lesions_cv_{variant}.log",
    benchmark:
        "results/benchmarks/evaluation/match_lesions_cv_{variant}.tsv"
    conda:
        "../../envs/evaluation.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        iou_thresholds=EV["iou_thresholds"],
    script:
        "../scripts/match_lesions_cv.py"


rule evaluate_cv:
    input:
        detections="results/evaluation/{variant}/detections.tsv",
        lesions="results/evaluation/{variant}/lesion_results.json",
    output:
        scores="results/evaluation/{variant}/case_scores.tsv",
        metrics="results/evaluation/{variant}/metrics.json",
        table="results/evaluation/{variant}/metrics.tsv",
    log:
        "results/logs/evaluation/evaluate_cv_{variant}.log",
    benchmark:
        "results/benchmarks/evaluation/evaluate_cv_{variant}.tsv"
    conda:
        "../../envs/evaluation.yaml"
    resources:
        **job_resources("light"),
    params:
        fusion=EV["fusion"],
        n_bootstrap=EV["n_bootstrap"],
        seed=EV["seed"],
    script:
        "../scripts/evaluate_cv.py"


rule summarize_evaluation:
    input:
        metrics=expand("results/evaluation/{variant}/metrics.json", variant=VARIANTS),
    output:
        table4=report(
            "results/evaluation/table4.html",
            caption="../report/table4.rst",
            category="Evaluation",
            labels={"figure": "Table 4"},
        ),
        table4_tsv="results/evaluation/table4.tsv",
        metrics=report(
            "results/evaluation/metrics.html",
            caption="../report/metrics.rst",
            category="Evaluation",
            labels={"figure": "all metrics"},
        ),
        roc=report(
            "results/evaluation/roc.png",
            caption="../report/roc.rst",
            category="Evaluation",
            labels={"figure": "ROC"},
        ),
        pr=report(
            "results/evaluation/pr.png",
            caption="../report/pr.rst",
            category="Evaluation",
            labels={"figure": "precision-recall"},
        ),
        froc=report(
            "results/evaluation/froc.png",
            caption="../report/froc.rst",
            category="Evaluation",
            labels={"figure": "FROC"},
        ),
    log:
        "results/logs/evaluation/summarize_evaluation.log",
    localrule: True
    conda:
        "../../envs/evaluation.yaml"
    params:
        variants=VARIANTS,
    script:
        "../scripts/summarize_evaluation.py"


rule compare_variants:
    input:
        metrics=expand("results/evaluation/{variant}/metrics.json", variant=VARIANTS),
    output:
        table="results/evaluation/comparison.tsv",
        html=report(
            "results/evaluation/comparison.html",
            caption="../report/comparison.rst",
            category="Evaluation",
            labels={"figure": "paired comparison of variants"},
        ),
    log:
        "results/logs/evaluation/compare_variants.log",
    localrule: True
    conda:
        "../../envs/evaluation.yaml"
    params:
        variants=VARIANTS,
        n_bootstrap=EV["n_bootstrap"],
        seed=EV["seed"],
    script:
        "../scripts/compare_variants.py"


rule plot_qa_montage:
    input:
        scores="results/evaluation/{variant}/case_scores.tsv",
        cases="results/dataset/cases.tsv",
    output:
        report(
            "results/evaluation/{variant}/qa_montage.png",
            caption="../report/qa_montage.rst",
            category="Evaluation",
            subcategory="{variant}",
            labels={"figure": "QA montage", "variant": "{variant}"},
        ),
    log:
        "results/logs/evaluation/plot_qa_montage_{variant}.log",
    localrule: True
    conda:
        "../../envs/evaluation.yaml"
    script:
        "../scripts/plot_qa_montage.py"


rule plot_training_curves:
    input:
        stage1=expand("results/stage1/fold_{fold}/training_log.txt", fold=FOLDS),
        stage2=expand(
            "results/stage2/{variant}/fold_{fold}/step{step}/training_log.txt",
            variant=VARIANTS,
            fold=FOLDS,
            step=STEPS,
        ),
    output:
        report(
            "results/evaluation/training_curves.png",
            caption="../report/training_curves.rst",
            category="Stage 2",
            labels={"figure": "training curves"},
        ),
    log:
        "results/logs/evaluation/plot_training_curves.log",
    localrule: True
    conda:
        "../../envs/evaluation.yaml"
    params:
        folds=FOLDS,
        variants=VARIANTS,
        steps=STEPS,
    script:
        "../scripts/plot_training_curves.py"


rule summarize_head_learning:
    input:
        expand(
            "results/stage2/{variant}/fold_{fold}/step{step}/head_validation.json",
            variant=VARIANTS,
            fold=FOLDS,
            step=STEPS,
        ),
    output:
        table="results/evaluation/head_learning.tsv",
        html=report(
            "results/evaluation/head_learning.html",
            caption="../report/head_learning.rst",
            category="Stage 2",
            labels={"figure": "does the classification head learn"},
        ),
    log:
        "results/logs/evaluation/summarize_head_learning.log",
    localrule: True
    conda:
        "../../envs/evaluation.yaml"
    params:
        jobs=[(v, f, s) for v in VARIANTS for f in FOLDS for s in STEPS],
    script:
        "../scripts/summarize_head_learning.py"


rule plot_stage1_qa:
    input:
        qa="results/stage1/qa.tsv",
        summary="results/stage1/qa_summary.json",
    output:
        figure=report(
            "results/stage1/roi_recall.png",
            caption="../report/roi_recall.rst",
            category="Stage 1",
            labels={"figure": "ROI lesion recall"},
        ),
        table=report(
            "results/stage1/qa_summary.html",
            caption="../report/stage1_qa.rst",
            category="Stage 1",
            labels={"figure": "localisation summary"},
        ),
    log:
        "results/logs/stage1/plot_stage1_qa.log",
    localrule: True
    conda:
        "../../envs/evaluation.yaml"
    script:
        "../scripts/plot_stage1_qa.py"
