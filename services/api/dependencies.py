"""Dependencies shared by the routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request

from salespulse.api.errors import ApiError
from salespulse.api.reading import Readings
from salespulse.readmodel import ReadModel
from salespulse.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_readmodel(request: Request) -> ReadModel:
    return request.app.state.readmodel


def get_producer(request: Request) -> AIOKafkaProducer:
    if not request.app.state.kafka_connected.is_set():
        raise ApiError(503, "kafka_unavailable", "not connected to Kafka yet; retry shortly")
    return request.app.state.producer


def get_readings(request: Request) -> Readings:
    return request.app.state.readings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ReadModelDep = Annotated[ReadModel, Depends(get_readmodel)]
ProducerDep = Annotated[AIOKafkaProducer, Depends(get_producer)]
ReadingsDep = Annotated[Readings, Depends(get_readings)]
