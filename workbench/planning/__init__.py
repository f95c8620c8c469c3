"""The numbers of a run before it runs, with sd-scripts' rules: buckets, the validation split, the
plan (repeats, reg balancing, steps), LR schedules, the time and memory estimate, the fast-path choice."""
