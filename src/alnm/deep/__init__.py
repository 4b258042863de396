"""Deep learning on tumour crops: MONAI networks, training, deep features, Grad-CAM."""
