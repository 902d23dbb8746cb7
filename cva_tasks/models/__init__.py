"""Customer lifetime-value models: BG/NBD, Gamma-Gamma and discounted CLV."""

from cva_tasks.models.clv import (
    BetaGeoFitter,
    GammaGammaFitter,
    cdnow_summary,
    customer_lifetime_value,
)

__all__ = ["BetaGeoFitter", "GammaGammaFitter", "cdnow_summary", "customer_lifetime_value"]
