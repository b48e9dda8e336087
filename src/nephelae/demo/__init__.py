"""The demo: a synthetic but realistic archive (L4 SST, L2P swaths, surface meteorology) and a ready platform."""

from nephelae.demo.setup import CREDENTIALS_FILE, set_up_demo

__all__ = ["CREDENTIALS_FILE", "set_up_demo"]
