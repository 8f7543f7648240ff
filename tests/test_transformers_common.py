"""transformers' own common model tests (`ModelTesterMixin`, `ConfigTester`) on the SmallEncoder family, in the style
of transformers' tests/models/bert/test_modeling_bert.py, for a bertmini-like and a neobert-like variant.

The test files come from the source distribution of the installed transformers version, fetched from the package
registry once into ~/.cache/small-encoders/transformers-tests/VERSION (never copied into this repository). That
sdist ships tests/test_modeling_common.py and tests/test_configuration_common.py but not three modules they import:
tests/exporters/test_export.py (the ExportTesterMixin, torch.export tests), tests/generation/test_utils.py (the
GenerationTesterMixin, for generative models) and tests/utils/test_configuration_utils.py (a dict of non-default
values for the config test). The first two are empty mixins here (an encoder uses neither); the dict is the one
public kwarg set ConfigTester needs, built below from PreTrainedConfig's own defaults.
"""

import importlib
import os
import subprocess
import sys
import tarfile
import unittest
from pathlib import Path

import pytest
import transformers

from small_encoders.modeling import (
    SmallEncoderConfig,
    SmallEncoderForMaskedLM,
    SmallEncoderForMultipleChoice,
    SmallEncoderForSequenceClassification,
    SmallEncoderForTokenClassification,
    SmallEncoderModel,
)

STUBS = {
    "exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    "generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    "utils/test_configuration_utils.py": (
        "config_common_kwargs = {'output_hidden_states': True, 'output_attentions': True, 'return_dict': False,\n"
        "    'dtype': 'float16', 'tie_word_embeddings': False, 'is_encoder_decoder': False, 'chunk_size_feed_forward': 5,\n"
        "    'architectures': ['BertModel'], 'id2label': {0: 'label'}, 'label2id': {'label': '0'},\n"
        "    'problem_type': 'regression', 'pad_token_id': 1, 'bos_token_id': 2, 'eos_token_id': 3}\n"
    ),
}


def common_tests_package():
    """Import path of transformers' tests package for the installed version, fetched from PyPI on first use."""
    version = transformers.__version__
    root = Path(os.environ.get("SMALL_ENCODERS_CACHE", Path.home() / ".cache" / "small-encoders")) / "transformers-tests" / version
    package = root / "transformers_tests"
    if not (package / "test_modeling_common.py").exists():
        root.mkdir(parents=True, exist_ok=True)
        fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                                  f"transformers=={version}", "-d", str(root)], capture_output=True, text=True)
        archives = sorted(root.glob(f"transformers-{version}.tar.gz"))
        if fetched.returncode != 0 or not archives:
            pytest.skip(f"transformers {version}'s source distribution could not be fetched from the package registry "
                        f"({fetched.stderr.strip().splitlines()[-1] if fetched.stderr.strip() else 'no archive'})",
                        allow_module_level=True)
        prefix = f"transformers-{version}/tests/"
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                if member.name.startswith(prefix) and member.isfile():
                    target = package / member.name[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.extractfile(member).read())
        for name, text in STUBS.items():
            target = package / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
            (folder / "__init__.py").touch()
    # Imported as a package from where it was fetched (no import-path edit): its modules import each other relatively.
    spec = importlib.util.spec_from_file_location("transformers_tests", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["transformers_tests"] = module
    spec.loader.exec_module(module)
    return "transformers_tests"


pytest.importorskip("parameterized", reason="transformers' common tests need parameterized (in requirements.txt)")
_tests = common_tests_package()
ModelTesterMixin = importlib.import_module(f"{_tests}.test_modeling_common").ModelTesterMixin
ids_tensor = importlib.import_module(f"{_tests}.test_modeling_common").ids_tensor
random_attention_mask = importlib.import_module(f"{_tests}.test_modeling_common").random_attention_mask
ConfigTester = importlib.import_module(f"{_tests}.test_configuration_common").ConfigTester

VARIANTS = {
    "bertmini": dict(),  # RoPE, pre-LayerNorm, GELU MLP, biases, tied decoder
    "neobert": dict(mlp_type="swiglu", norm_type="rmsnorm", use_bias=False, tie_word_embeddings=False),
}


class SmallEncoderModelTester:
    def __init__(self, parent, variant, batch_size=13, seq_length=7, vocab_size=99, hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=37, num_labels=3, num_choices=4):
        self.parent, self.variant = parent, variant
        self.batch_size, self.seq_length, self.vocab_size = batch_size, seq_length, vocab_size
        self.hidden_size, self.num_hidden_layers = hidden_size, num_hidden_layers
        self.num_attention_heads, self.intermediate_size = num_attention_heads, intermediate_size
        self.num_labels, self.num_choices = num_labels, num_choices
        self.is_training = True

    def get_config(self):
        # sparse_prediction off: the common tests expect (batch, length, vocab) MLM logits even when labels are given.
        return SmallEncoderConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            max_position_embeddings=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
            num_labels=self.num_labels, sparse_prediction=False, **VARIANTS[self.variant],
        )

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        attention_mask = random_attention_mask([self.batch_size, self.seq_length])
        sequence_labels = ids_tensor([self.batch_size], self.num_labels)
        token_labels = ids_tensor([self.batch_size, self.seq_length], self.num_labels)
        choice_labels = ids_tensor([self.batch_size], self.num_choices)
        return self.get_config(), input_ids, attention_mask, sequence_labels, token_labels, choice_labels

    def prepare_config_and_inputs_for_common(self):
        config, input_ids, attention_mask, *_ = self.prepare_config_and_inputs()
        return config, {"input_ids": input_ids, "attention_mask": attention_mask}

    def check_heads(self):
        import torch

        config, input_ids, attention_mask, sequence_labels, token_labels, choice_labels = self.prepare_config_and_inputs()
        shape = (self.batch_size, self.seq_length)
        with torch.no_grad():
            base = SmallEncoderModel(config).eval()(input_ids, attention_mask=attention_mask)
            self.parent.assertEqual(base.last_hidden_state.shape, (*shape, self.hidden_size))
            mlm = SmallEncoderForMaskedLM(config).eval()(input_ids, attention_mask=attention_mask, labels=token_labels)
            self.parent.assertEqual(mlm.logits.shape, (*shape, self.vocab_size))
            classifier = SmallEncoderForSequenceClassification(config).eval()
            result = classifier(input_ids, attention_mask=attention_mask, labels=sequence_labels)
            self.parent.assertEqual(result.logits.shape, (self.batch_size, self.num_labels))
            tokens = SmallEncoderForTokenClassification(config).eval()(input_ids, attention_mask=attention_mask, labels=token_labels)
            self.parent.assertEqual(tokens.logits.shape, (*shape, self.num_labels))
            choices = input_ids.unsqueeze(1).expand(-1, self.num_choices, -1).contiguous()
            mask = attention_mask.unsqueeze(1).expand(-1, self.num_choices, -1).contiguous()
            multiple = SmallEncoderForMultipleChoice(config).eval()(choices, attention_mask=mask, labels=choice_labels)
            self.parent.assertEqual(multiple.logits.shape, (self.batch_size, self.num_choices))


# The common tests find a class's task by its name in transformers' static mappings (model type -> class name), which
# list only in-library models; AutoModel*.register (modeling/__init__.py) fills the Auto classes, not these. For the
# duration of the tests the family is entered there too, as it would be if it shipped inside transformers.
TASK_MAPPINGS = {
    "MODEL_MAPPING_NAMES": "SmallEncoderModel",
    "MODEL_FOR_MASKED_LM_MAPPING_NAMES": "SmallEncoderForMaskedLM",
    "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES": "SmallEncoderForSequenceClassification",
    "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES": "SmallEncoderForTokenClassification",
    "MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES": "SmallEncoderForMultipleChoice",
}


@pytest.fixture(autouse=True, scope="module")
def family_in_task_mappings():
    from transformers.models.auto import modeling_auto

    for mapping, name in TASK_MAPPINGS.items():
        getattr(modeling_auto, mapping)[SmallEncoderConfig.model_type] = name
    yield
    for mapping in TASK_MAPPINGS:
        getattr(modeling_auto, mapping).pop(SmallEncoderConfig.model_type, None)


class SmallEncoderCommonTests(ModelTesterMixin):
    all_model_classes = (SmallEncoderModel, SmallEncoderForMaskedLM, SmallEncoderForSequenceClassification,
                         SmallEncoderForTokenClassification, SmallEncoderForMultipleChoice)
    variant = None

    def setUp(self):
        self.model_tester = SmallEncoderModelTester(self, self.variant)
        self.config_tester = ConfigTester(self, config_class=SmallEncoderConfig, hidden_size=64)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_heads(self):
        self.model_tester.check_heads()


class BertminiLikeTest(SmallEncoderCommonTests, unittest.TestCase):
    variant = "bertmini"


class NeobertLikeTest(SmallEncoderCommonTests, unittest.TestCase):
    variant = "neobert"
