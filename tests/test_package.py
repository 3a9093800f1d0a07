import subprocess
import sys

MODULES = [
    "blindspot",
    "blindspot.model",
    "blindspot.objectives",
    "blindspot.data",
    "blindspot.directions",
    "blindspot.pushforward",
    "blindspot.jacobian",
    "blindspot.subspaces",
    "blindspot.sharding",
    "blindspot.fast_paths",
    "blindspot.curvature",
    "blindspot.taylor",
    "blindspot.training",
    "blindspot.architectures",
    "blindspot.probe",
    "blindspot.verify",
    "blindspot.claims",
    "blindspot.hook",
    "blindspot.hook_analysis",
    "blindspot.hook_theory",
    "blindspot.masks",
    "blindspot.transformer",
]

PROBE = f"""
import jax
before = (jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision, jax.config.jax_numpy_dtype_promotion)
import importlib
for name in {MODULES!r}:
    importlib.import_module(name)
after = (jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision, jax.config.jax_numpy_dtype_promotion)
print(before == after, before)
"""


def test_importing_every_module_changes_no_jax_setting():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("True (False,"), out.stdout + out.stderr


def test_the_core_package_does_not_load_sympy():
    code = "import sys, blindspot.model, blindspot.objectives, blindspot.data; print('sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
