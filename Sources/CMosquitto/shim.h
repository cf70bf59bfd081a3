#pragma once
// libmosquitto (Debian libmosquitto-dev): the MQTT client the MQTT module wraps.
#include <mosquitto.h>
