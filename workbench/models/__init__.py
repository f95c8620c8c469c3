"""Base models: what a model is (family, v-prediction) read without loading it, Hugging Face repo
ids and the hub cache, local model sources to pick from, the offline demo models."""
