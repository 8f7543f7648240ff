"""Streaming: the training corpus read as a `datasets.IterableDataset` (Hub or local files) and tokenized and packed on
the fly, so the first step comes in seconds whatever the corpus size and memory does not grow with it.

The blocks are `data_prep.packing`'s, made by the same function in the same batches of 1,000 documents: the same
documents in the same order give the same blocks, layout and document ids as the in-memory path. The training stream
(`BlockStream`) shuffles the order of its files (shards), gives each process its own files (or, with fewer files than
processes, every process its own rows of them), shuffles blocks window by window, and repeats without end (the run's
length is its step count or time budget). It saves where it is (`state_dict`), so a resumed run starts at the next
block instead of reading the stream again from its start.
"""

import copy
import hashlib
from contextlib import contextmanager
from itertools import islice

import numpy as np
import torch
from datasets import Dataset, load_dataset
from datasets.distributed import split_dataset_by_node

from small_encoders.core.errors import UserError
from small_encoders.data_prep.corpus import builder_options, expand_files, keep_text, load_local
from small_encoders.data_prep.packing import BATCH, block_edges, pack_batch

SHUFFLE_BUFFER = 10_000  # blocks shuffled together: about 10 MB of token ids at block 128, several files' worth of text
HELD_OUT = 2000  # documents held out from the head of a stream that has no validation split or files


def open_stream(dataset_name=None, dataset_config=None, train_files=None, encoding_errors="strict", sample_by="line"):
    """The raw training documents as an IterableDataset: local files, or a Hub dataset's train split."""
    if train_files:
        files = expand_files(train_files, "--train_files")
        builder, options = builder_options(files, encoding_errors, sample_by)
        return load_dataset(builder, data_files=files, split="train", streaming=True, **options)
    if dataset_name:
        try:
            return load_dataset(dataset_name, dataset_config, split="train", streaming=True)
        except Exception as error:  # the Hub client raises many types; all mean the same to the user
            raise UserError(
                f"could not stream the Hub dataset {dataset_name!r} ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:200]}); without network, pass local text with --train_files"
            ) from None
    raise UserError("no data source: set dataset_name in the recipe or pass --train_files")


def text_only(stream, text_column, where="training"):
    """Only the text column, named `text`, without empty rows (the in-memory path's keep_text, lazily)."""
    try:
        first = next(iter(stream))
    except StopIteration:
        raise UserError(f"the {where} data holds no rows; check --train_files") from None
    except UnicodeDecodeError as error:
        raise UserError(f"a {where} file is not UTF-8 ({error.reason}); convert it to UTF-8 or pass "
                        f"--encoding_errors replace to turn bad bytes into U+FFFD") from None
    if text_column not in first:
        raise UserError(f"the {where} data has no column {text_column!r} (columns: {sorted(first)}); pass --text_column NAME")
    stream = stream.select_columns([text_column])
    if text_column != "text":
        stream = stream.rename_column(text_column, "text")
    return stream.filter(lambda batch: [bool(t and t.strip()) for t in batch["text"]], batched=True)


def as_dataset(stream, count):
    """The first `count` rows of a stream, in memory."""
    return Dataset.from_list(list(islice(iter(stream), count)))


def streamed_corpus(dataset_name, dataset_config, train_files, validation_files, text_column, max_train_samples,
                    max_validation_samples, encoding_errors, sample_by):
    """(training documents as a stream, validation documents in memory). Validation comes from `validation_files` (the
    first `max_validation_samples` of them, as in memory), else the first `max_validation_samples` (default 2,000) of
    the Hub dataset's validation split, else as many of the stream's first documents, which training then leaves out
    by their text (a stream has no length to take a percentage of). Leaving them out by text rather than skipping the
    stream's head holds for any split of the stream: `datasets` applies a `skip` to each worker's and each process's
    part of the stream, so with workers the held-out documents were trained on."""
    train = text_only(open_stream(dataset_name, dataset_config, train_files, encoding_errors, sample_by), text_column)
    held = max_validation_samples or HELD_OUT
    validation = None
    if validation_files:  # as the in-memory path reads them: all, or the first max_validation_samples
        validation = keep_text(load_local(expand_files(validation_files, "--validation_files"), encoding_errors, sample_by),
                               text_column)
        if max_validation_samples:
            validation = validation.select(range(min(max_validation_samples, len(validation))))
    elif dataset_name and not train_files:
        try:
            hub_validation = load_dataset(dataset_name, dataset_config, split="validation", streaming=True)
            validation = as_dataset(text_only(hub_validation, text_column, "validation"), held)
        except UserError:
            raise
        except Exception:
            validation = None
    if validation is None:
        validation = as_dataset(train, held)
        train = train.filter(not_held_out, batched=True, input_columns="text",
                             fn_kwargs=dict(held_out=frozenset(map(text_digest, validation["text"]))))
    if max_train_samples:
        train = train.take(max_train_samples)
    if len(validation) == 0:
        raise UserError("the validation data holds no non-empty text; check --validation_files")
    return train, validation


def text_digest(text):
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def not_held_out(texts, held_out):
    """Batched filter: the documents whose text is not one of the held-out documents' (a duplicate of one is left out
    too, so no held-out text is trained on)."""
    return [text_digest(text) not in held_out for text in texts]


def pack_stream(documents, tokenizer, block_size, with_document_ids=False):
    """Blocks of `documents` (a stream with a `text` column), tokenized and packed on the fly: `pack_batch` over batches
    of 1,000 documents, as the in-memory path packs them."""
    block_edges(tokenizer)  # a tokenizer without [CLS]/[SEP] fails here, before training starts
    return documents.map(pack_batch, batched=True, batch_size=BATCH, input_columns="text", remove_columns=["text"],
                         fn_kwargs=dict(tokenizer=tokenizer, block_size=block_size, with_document_ids=with_document_ids))


def process_part(documents, seed, process_index=0, num_processes=1):
    """This process's documents: the files (shards) in an order shuffled with the seed, then this process's files
    when their number is a multiple of the processes' (else every process reads all files and keeps every
    `num_processes`-th document). Returns (documents, a note for the run header or None)."""
    shuffled = documents.shuffle(seed=seed, buffer_size=1)  # a one-row buffer: the file order only
    if num_processes <= 1:
        return shuffled, None
    files = documents.num_shards
    note = None
    if files % num_processes:
        note = (f"the stream has {files} file(s) for {num_processes} processes, not a multiple: every process reads "
                f"all of them and tokenizes every {num_processes}th document (split the corpus into a multiple of "
                f"{num_processes} files to read each file once)")
    return split_dataset_by_node(shuffled, rank=process_index, world_size=num_processes), note


class BlockStream(torch.utils.data.IterableDataset):
    """A process's training blocks, shuffled window by window and repeated without end, resumable from its state.

    Each DataLoader worker reads its own files of the process's stream (`datasets` splits them), takes `window` blocks
    at a time, yields them in a seeded permutation and goes on to the next window; at the end of the stream it starts
    again (each pass in the same order; the collator's masks differ from pass to pass). `state_dict()` says where it
    is: the stream's own state at the current window's start and how many of the window's blocks were yielded.
    `load_state_dict()` (torchdata's `StatefulDataLoader` calls both in each worker) makes the next iteration read that
    window again and go on after its yielded blocks: a resume reads at most one window, whatever the step.
    (`datasets`' own shuffle buffer cannot do that: its contents are lost on a resume, so the blocks would differ.)"""

    def __init__(self, blocks, seed, window=SHUFFLE_BUFFER):
        self.blocks, self.seed, self.window = blocks, seed, window
        self.position, self.resume_from = self.start(), None

    @staticmethod
    def start():
        return {"pass": 0, "window": 0, "window_start": None, "yielded": 0}

    def state_dict(self):
        return dict(self.position)

    def load_state_dict(self, state):
        self.resume_from = dict(state)

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        worker_id = worker.id if worker is not None else 0
        position, self.resume_from = self.resume_from or self.start(), None
        while True:
            blocks = copy.copy(self.blocks)  # a copy per pass: a state loaded into it stays with it
            if position["window_start"] is not None:
                with quiet_datasets():  # "the shuffle buffer will be refilled": the file-order buffer holds one row
                    blocks.load_state_dict(position["window_start"])
            rows, windows = iter(blocks), 0
            while True:
                window = list(islice(rows, self.window))
                if not window:
                    break
                windows += 1
                next_start = blocks.state_dict()  # the stream just after this window: where the next one starts
                seed = [self.seed, position["pass"], position["window"], worker_id]
                following = dict(position, window=position["window"] + 1, window_start=next_start, yielded=0)
                for index in np.random.default_rng(seed).permutation(len(window))[position["yielded"]:]:
                    position["yielded"] += 1
                    # After a window's last block the state already points at the next window (nothing to read again).
                    self.position = dict(following if position["yielded"] == len(window) else position)
                    yield window[index]
                position = following
            if windows == 0 and position["window"] == 0:
                return  # an empty stream (say, a worker without files): nothing to repeat
            position = dict(self.start(), **{"pass": position["pass"] + 1})
            self.position = dict(position)


@contextmanager
def quiet_datasets():
    """`datasets`' warnings off for a moment."""
    from datasets.utils import logging as datasets_logging

    verbosity = datasets_logging.get_verbosity()
    datasets_logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets_logging.set_verbosity(verbosity)
