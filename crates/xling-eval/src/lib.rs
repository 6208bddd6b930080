//! Retrieval evaluation on LAReQA-format data (XQuAD-R, MLQA-R): mAP, recall, nDCG
