"""Domain adaptation: align a source-trained model with unlabelled target data (issue #16)."""
