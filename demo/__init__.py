"""The Gradio demo: python demo/app.py --model_name_or_path DIR_OR_HUB_ID."""
