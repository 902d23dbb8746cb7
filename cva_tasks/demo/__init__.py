"""The demo shop: a seeded, realistic online-shop data set (see :mod:`cva_tasks.demo.shop`)."""

from cva_tasks.demo.shop import (
    DEFAULT_END,
    DEFAULT_START,
    ShopFrames,
    generate_frames,
    generate_shop,
    write_database,
    write_feedback_drops,
    write_ground_truth,
)

__all__ = [
    "DEFAULT_END",
    "DEFAULT_START",
    "ShopFrames",
    "generate_frames",
    "generate_shop",
    "write_database",
    "write_feedback_drops",
    "write_ground_truth",
]
