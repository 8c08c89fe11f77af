"""Model definitions: caption decoder, student encoders, captioner wrapper."""
