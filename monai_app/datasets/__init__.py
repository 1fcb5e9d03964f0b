"""One module per on-disk dataset format: find cases, build MONAI datalists, label conventions, synthetic writers."""
