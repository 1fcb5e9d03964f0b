"""What runs around MONAI's Ignite engines: handlers (metric columns, class metrics, pictures, progress, learning
rate), checkpoints that resume, the training data pipeline (caches and a loader thread that keeps errors), inference
that survives bad cases, bf16 inference on the CPU, and the torchrun / DDP glue."""
