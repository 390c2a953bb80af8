"""The JSON the server answers with, declared once: FastAPI checks it and documents it at /docs.

`Record` mirrors `pipeline.app.records.frame_records` (the format of `ferflow predict`);
`tests/test_serve_api.py` checks that the two keep the same keys.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Record(BaseModel):
    """One face of a frame, or the single `faces: 0` record of a frame without faces."""

    file: str
    frame: int
    time: float | None = Field(description="seconds since the stream opened; null for photos")
    faces: int = Field(description="faces in this frame")
    face: int | None = Field(description="this face's index in the frame, left to right")
    track: int | None = Field(description="id following one face across a stream's frames")
    box: list[int] | None = Field(description="x, y, width, height in the image's pixels")
    label: str | None
    score: float | None = Field(description="probability of `label`")
    probabilities: dict[str, float] | None = Field(description="every label's probability")


class Prediction(BaseModel):
    width: int
    height: int
    records: list[Record]


class Accuracy(BaseModel):
    value: float = Field(description="fraction of faces labelled right")
    split: str | None = Field(description="`test` is FER2013's PrivateTest")
    images: int | None
    source: str = Field(description="the record it was read from")


class InputContract(BaseModel):
    height: int
    width: int
    channels: int
    layout: str
    scale: float
    offset: float


class ModelInfo(BaseModel):
    name: str
    file: str
    labels: list[str]
    input: InputContract = Field(description="labels.json's input contract: pixel*scale+offset")
    weights: str | None
    accuracy: Accuracy | None = Field(description="recorded accuracy; null if none recorded")


class Health(BaseModel):
    status: str
    model: str
    uptime_s: float
    photos: int = Field(description="photos analysed since start")
    frames: int = Field(description="stream frames analysed since start")
    streams: int = Field(description="WebSocket streams open now")


class Error(BaseModel):
    error: str = Field(description="what was wrong, in one line")
