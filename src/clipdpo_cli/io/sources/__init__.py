"""Record sources: every input format a stage reads, recognised once, as one iterator of records with ids.

Formats (`--input-format`, or recognised from the first bytes and the name; table.py's READERS gives each
its reader, one module per format):
  jsonl       JSON lines (.jsonl, .jsonl.gz, stdin): the stages' own format, read by io.jsonl (lines.py)
  json        a JSON array (json_array.py); LLaVA / ShareGPT SFT data (entries with `conversations` or
              `messages`) gives one record per distinct image (text-only entries skipped and counted, the
              entry ids kept as `sft_id` / `sft_ids`, the conversations left out); any other array one
              record per entry
  images      a folder of image files (the stages that take images: caption, ask; folder.py)
  hf          a Hugging Face dataset on disk: a `save_to_disk` folder, or a folder `load_dataset` reads
  parquet     a parquet file (the `datasets` library reads it, streaming)
  arrow       an Arrow file (as `datasets` writes them); hf, parquet and arrow: hf.py
  webdataset  tar shards as img2dataset writes them (KEY.jpg + KEY.json / KEY.txt; `{00000..00009}` ranges
              and folders of .tar files too), read by the `webdataset` library (webdataset.py)

A file whose first bytes show another format than its name (or --input-format) says is refused at once with
one line naming the option that reads it: --on-error skip is for bad records, not for a wrong format
(formats.py: the names, the settings, the recognition).

A path that can be read only once (a pipe such as `<(zcat a.jsonl.gz)`, a FIFO) is recognised from the bytes
io/streams.py keeps and gives back to the reader (gzip in it read transparently); JSON lines, JSON arrays and
webdataset tars come through a pipe, the formats `datasets` reads need a file. --max-record-size bounds a
JSON line (io/jsonl.py) and a tar member (webdataset._tar_members): a larger one is read past, a bad record.

Images that arrive as bytes (an Image column, a binary column, a webdataset member; byte_images.py) are
checked by the one image decoder (io.images.verify_image_bytes) and written once, named by their content
hash, under --extract-images-to (default: beside -o), so later stages open them as files. Sharding and
resume see the hash name, so a shard's records do not depend on where its images are written; the written
record keeps that hash as `image_hash`, from which `caption` makes its ids (they do not depend on -o /
--extract-images-to either).

What the user brought is kept under names of its own: a dataset row's or a webdataset sample's own `id` as
`source_id` (as an SFT entry's is `sft_id`); `--text-column` is read as `text`, and `caption`, which writes
its caption to `text`, moves it to `source_text` first.
"""

from clipdpo_cli.io.sources.byte_images import IMAGE_BYTES, IMAGE_HASH, SOURCE_ID, default_image_dir
from clipdpo_cli.io.sources.formats import DESCRIBED, FORMATS, InputSettings, detect_format, sniff
from clipdpo_cli.io.sources.table import READERS, InputSource, Reader, check_input, line_source, open_input

__all__ = [
    "DESCRIBED",
    "FORMATS",
    "IMAGE_BYTES",
    "IMAGE_HASH",
    "READERS",
    "SOURCE_ID",
    "InputSettings",
    "InputSource",
    "Reader",
    "check_input",
    "default_image_dir",
    "detect_format",
    "line_source",
    "open_input",
    "sniff",
]
