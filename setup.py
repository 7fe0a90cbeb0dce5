"""Build the compiled tree scorer, carprice.runtime._treescore; the metadata is in pyproject.toml.

The flags keep IEEE arithmetic exact: no fast-math and no contraction of a*b+c into one fused
multiply-add, so the scorer adds the leaf values exactly as LightGBM does.
"""

from setuptools import Extension, setup

FLAGS = ["-O3", "-fno-fast-math", "-ffp-contract=off", "-fno-strict-aliasing"]

setup(
    ext_modules=[
        Extension(
            "carprice.runtime._treescore",
            sources=["src/carprice/runtime/_treescore.c"],
            extra_compile_args=FLAGS,
        )
    ]
)
