"""The Streamlit app of the interp workbench: thin glue over ``interp``. Run ``interp app``."""
