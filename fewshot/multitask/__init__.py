"""Multi-task learning: one shared encoder, one head per task, trained on several labelled
data sets at once, and compared with one model per task.

- `sampling`: which tasks each step trains on (proportional to their sizes or uniform) and
  each task's next mini-batch (shuffled passes);
- `weighting`: how the tasks' losses add up (user weights, or Kendall et al.'s learned
  uncertainty weights);
- `model`: the shared encoder and its heads; `training`: one model trained step by step;
- `run`: the run (`fewshot.run_loop` task) that trains the shared model and, as the baseline,
  one model per task, resumably; `report` / `plot`: the comparison's table and bar chart;
- `estimator`: `MultiTaskLearner`, the fit/predict API in the learners' shape.
"""
