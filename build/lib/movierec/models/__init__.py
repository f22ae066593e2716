"""Rating models: encoders over the user–movie graph, decoders, and the LightningModule."""
