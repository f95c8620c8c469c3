"""The dataset on disk: the scan of `<repeats>_<class>` folders, caption files (atomic writes, tag
operations, bulk edits), weighted-caption syntax, loss masks and face-crop boxes read from files, the
folder browser's model, the one rule for a readable image, thumbnails. Pure Python and PIL."""
