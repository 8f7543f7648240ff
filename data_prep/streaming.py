"""Streaming: the training corpus read as a `datasets.IterableDataset` (Hub or local files) and tokenized and packed on
the fly, so the first step comes in seconds whatever the corpus size and memory does not grow with it.

The blocks are `data_prep.packing`'s, made by the same function in the same batches of 1,000 documents: the same
documents in the same order give the same blocks, layout and document ids as the in-memory path. The training stream
shuffles the order of its files (shards) and then its blocks through a buffer, and repeats without end (the run's
length is its step count or time budget); under `accelerate launch` each process reads its own shards (accelerate's
sharding of a `datasets.IterableDataset`, with batches not dispatched from the first process).
"""

from itertools import islice

from datasets import Dataset, load_dataset

from cli.errors import UserError
from data_prep.corpus import builder_options, expand_files, keep_text, load_local
from data_prep.packing import BATCH, block_edges, pack_batch

SHUFFLE_BUFFER = 10_000  # blocks: about 10 MB of token ids at block 128, drawn from several files' worth of text
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
    the Hub dataset's validation split, else as many of the stream's first documents, which training then skips (a
    stream has no length to take a percentage of)."""
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
        train = train.skip(held)
    if max_train_samples:
        train = train.take(max_train_samples)
    if len(validation) == 0:
        raise UserError("the validation data holds no non-empty text; check --validation_files")
    return train, validation


def pack_stream(documents, tokenizer, block_size, with_document_ids=False):
    """Blocks of `documents` (a stream with a `text` column), tokenized and packed on the fly: `pack_batch` over batches
    of 1,000 documents, as the in-memory path packs them."""
    block_edges(tokenizer)  # a tokenizer without [CLS]/[SEP] fails here, before training starts
    return documents.map(pack_batch, batched=True, batch_size=BATCH, input_columns="text", remove_columns=["text"],
                         fn_kwargs=dict(tokenizer=tokenizer, block_size=block_size, with_document_ids=with_document_ids))


def training_stream(blocks, seed, buffer_size=SHUFFLE_BUFFER):
    """The blocks in training order: files (shards) shuffled with the seed, blocks shuffled through a buffer, repeated
    without end (each pass in the same order; the collator's masks differ from pass to pass)."""
    return blocks.shuffle(seed=seed, buffer_size=buffer_size).repeat(None)
