"""Dictionaries: sparse autoencoders (SAEs) and transcoders, trained and loaded via sae-lens.

An SAE rewrites one activation as a sparse sum of learned feature directions; a transcoder
predicts an MLP's output from its input through sparse features, so it can stand in for the MLP
in attribution graphs (``interp.attribution_graph``). Everything is saved and loaded in
sae-lens's format; the transcoders of ``induction-2l`` ship with the package, and those of three
SmolLM2-135M-Instruct MLPs, trained on English text (``interp.corpus``). Published dictionaries
load by registry name through sae-lens (``load_pretrained``), from the local Hugging Face cache.
A feature's page (``feature_page``) shows where it fires, what it writes to the logits and its
upstream and downstream features (``feature_connections``); ``steer`` clamps or adds a feature
while the model continues a prompt, next to the unsteered completion.
A cross-layer transcoder (``CrossLayerTranscoder``) replaces every MLP at once, its features
writing to all later MLPs; it loads and saves in circuit-tracer's format (``load_clt``,
``save_clt``), and one trained on ``induction-2l`` ships too.
"""

from ._clt import CrossLayerTranscoder as CrossLayerTranscoder
from ._clt import check_clt as check_clt
from ._clt_evaluate import clt_report as clt_report
from ._clt_evaluate import spliced_clt as spliced_clt
from ._clt_io import load_clt as load_clt
from ._clt_io import save_clt as save_clt
from ._clt_train import shipped_clt_metrics as shipped_clt_metrics
from ._clt_train import train_clt as train_clt
from ._clt_train import train_shipped_clt as train_shipped_clt
from ._evaluate import check_transcoders as check_transcoders
from ._evaluate import reconstruction_report as reconstruction_report
from ._evaluate import spliced as spliced
from ._features import feature_density as feature_density
from ._features import feature_logit_effects as feature_logit_effects
from ._features import feature_top_contexts as feature_top_contexts
from ._io import export_circuit_tracer as export_circuit_tracer
from ._io import load_dictionary as load_dictionary
from ._io import load_transcoders as load_transcoders
from ._io import save_transcoders as save_transcoders
from ._natural import natural_held_out_tokens as natural_held_out_tokens
from ._natural import train_natural as train_natural
from ._pages import corpus_tokens as corpus_tokens
from ._pages import feature_connections as feature_connections
from ._pages import feature_page as feature_page
from ._pages import feature_pages as feature_pages
from ._pretrained import load_pretrained as load_pretrained
from ._pretrained import pretrained_releases as pretrained_releases
from ._pretrained import resolve_pretrained as resolve_pretrained
from ._recipes import NATURAL_LAYERS as NATURAL_LAYERS
from ._recipes import RECIPES as RECIPES
from ._recipes import has_shipped as has_shipped
from ._recipes import held_out_tokens as held_out_tokens
from ._recipes import shipped_dir as shipped_dir
from ._recipes import shipped_metrics as shipped_metrics
from ._recipes import token_sampler as token_sampler
from ._recipes import train_shipped as train_shipped
from ._sae import train_sae as train_sae
from ._steer import Steering as Steering
from ._steer import feature_intervention as feature_intervention
from ._steer import steer as steer
from ._transcoder import TranscoderTrainConfig as TranscoderTrainConfig
from ._transcoder import new_transcoder as new_transcoder
from ._transcoder import train_transcoder as train_transcoder
from ._transcoder import train_transcoders as train_transcoders
from ._transcoder import transcoder_hooks as transcoder_hooks
