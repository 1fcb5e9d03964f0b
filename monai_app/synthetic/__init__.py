"""Synthetic datasets written in exactly the real on-disk layouts (``monai-app synth``): BraTS (MSD and the
challenge layouts), Carvana, CamVid, Pascal VOC 2012 and Clothing Co-Parsing. Tests and demos train the real
loaders and bundle configs on them; no config uses them."""
