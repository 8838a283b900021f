// PlinthInference: see DESIGN.md. Sources arrive with their issue.
