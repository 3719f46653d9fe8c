from django.apps import AppConfig


class SimulationsConfig(AppConfig):
    """Metadata of particle-in-cell runs (WarpX, PIConGPU, SMILEI), linked to the shots they model."""

    name = "simulations"
