"""The one typed config (schema.py: keys, help, choices; topics.py: the Parameters page's topics,
sections and kohya_ss labels), its validation rules, and configs that travel (kohya_ss GUI JSON /
sd-scripts TOML in, the sd-scripts job out)."""
