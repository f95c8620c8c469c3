"""Auto-captioning: WD14-style ONNX taggers and transformers image-to-text captioners, run over a
dataset folder by `workbench caption` (in the foreground) or by the Dataset page's Caption tab (as
its own process, `python -m workbench.captioning.worker JOB_DIR`).

    settings.py  what the user chose (model, thresholds, prefix, existing-caption policy …), checked
    tags.py      a tagger's selected_tags.csv and which tags a set of scores gives (pure)
    policy.py    how a new caption meets an existing one: skip / append / overwrite, prefix (pure)
    models.py    a path or Hugging Face repo id → what kind of model it holds
    wd14.py      the ONNX tagger: kohya's preprocessing, onnxruntime
    sentences.py the transformers captioner (BLIP, GIT, Florence-2 …)
    run.py       the loop over images in batches: stop after a batch, atomic conflict-aware writes,
                 one undo-journal entry for the whole run
    jobs.py      job folders for the app: launch, status, stop (like workbench/runs/registry.py)
    worker.py    the job process

Nothing heavy (numpy, onnxruntime, torch, transformers) is imported at module level.
"""
