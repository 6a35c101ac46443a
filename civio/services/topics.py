"""IO's service topics (``GET /manage/services/topics``): the ids and names as IO lists them
(io-services-cms), the vocabulary of a managed service's ``metadata.topic_id``."""

from __future__ import annotations

from civio.services.manage_schemas import CmsServiceTopic, CmsServiceTopicList

TOPICS: dict[int, str] = {
    0: "Altro",
    1: "Ambiente e animali",
    2: "Attività produttive e commercio",
    3: "Benessere sociale",
    4: "Casa e utenze",
    5: "Cultura, tempo libero e sport",
    6: "Educazione e formazione",
    7: "Giustizia e legge",
    8: "Lavori edilizi, catasto e urbanistica",
    9: "Mobilità e trasporti",
    10: "Redditi, patrimoni e fisco",
    11: "Servizi anagrafici e civici",
    12: "Servizi elettorali",
    13: "Sicurezza e Protezione Civile",
    14: "Suolo, spazi e beni pubblici",
    15: "Viaggi e turismo",
    16: "Vita lavorativa",
    17: "Salute",
}


def topic_list() -> CmsServiceTopicList:
    return CmsServiceTopicList(
        topics=[CmsServiceTopic(id=key, name=name) for key, name in TOPICS.items()]
    )


def topic(topic_id: object) -> CmsServiceTopic | None:
    if isinstance(topic_id, int) and topic_id in TOPICS:
        return CmsServiceTopic(id=topic_id, name=TOPICS[topic_id])
    return None
