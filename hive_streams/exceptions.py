"""One root exception; third-party errors are converted at the boundary."""


class HiveError(Exception):
    pass


class InfraError(HiveError):
    pass


class CodecError(HiveError):
    pass


class UnknownSchemaError(CodecError):
    pass


class TruncatedRecordError(CodecError):
    pass


class StoreError(HiveError):
    pass


class ConfigError(HiveError):
    """A setting that cannot work: the process refuses to start and names it."""


class BlobError(HiveError):
    """A blob that cannot be read whole from the log, or whose bytes do not match its digest."""


class RecordsRefused(StoreError):
    """Records a read model cannot hold: (topic, partition, offset) -> why. Nothing of their batch was written."""

    def __init__(self, refused: dict[tuple[str, int, int], str]):
        super().__init__(f"{len(refused)} records refused by the read models")
        self.refused = refused
