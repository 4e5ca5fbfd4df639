"""Zero-shot classification with CLIP: prompt templates, the classifier, folder labelling.

Heavy modules (open_clip) load only when used: import from the submodules
(`fewshot.zeroshot.classifier`, `fewshot.zeroshot.templates`, `fewshot.zeroshot.labelling`).
"""
