"""Energy and CO2 of training, measured by codecarbon's offline tracker (no network calls)."""

import logging

import keras


def check_country(country):
    """Raises ValueError unless codecarbon knows ``country`` (ISO 3166 alpha-3), so a bad code fails
    before training rather than when the first tracker stops."""
    from codecarbon.input import DataSource  # slow to import; only runs that track emissions load it

    known = DataSource().get_global_energy_mix_data()
    if country not in known:
        close = [code for code in sorted(known) if code[:1] == str(country)[:1].upper()][:8]
        raise ValueError(f"--country={country!r} is not a country codecarbon knows (ISO 3166 alpha-3 in capitals, "
                         f"e.g. USA, FRA, DEU{'; starting alike: ' + ', '.join(close) if close else ''}).")


class Emissions(keras.callbacks.Callback):
    """Tracks the energy and CO2 of ``fit`` with ``codecarbon.OfflineEmissionsTracker``.

    The tracker starts at ``on_train_begin`` and stops at ``on_train_end``; then ``result`` holds
    ``energy_kwh``, ``emissions_kg`` (CO2-equivalent), ``duration_s`` and the power figures. The
    carbon intensity is that of ``country`` (ISO 3166 alpha-3, e.g. ``USA``, ``FRA``, ``BRA``).
    On machines without power counters codecarbon estimates CPU power from its TDP tables; the
    result says which mode was used.

    Args:
      country: the ISO alpha-3 code whose grid carbon intensity applies.
      measure_power_secs: how often codecarbon samples power.
    """

    def __init__(self, country="USA", measure_power_secs=5):
        super().__init__()
        self.country = country
        self.measure_power_secs = measure_power_secs
        self.result = None
        self._tracker = None

    def on_train_begin(self, logs=None):
        from codecarbon import OfflineEmissionsTracker  # slow to import; only trainings that track load it

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country, log_level="error", save_to_file=False,
            measure_power_secs=self.measure_power_secs)
        self._tracker.start()

    def on_train_end(self, logs=None):
        if self._tracker is None:
            return
        emissions = self._tracker.stop()
        data = self._tracker.final_emissions_data
        self.result = {
            "energy_kwh": float(data.energy_consumed),
            "emissions_kg": float(emissions or 0.0),
            "duration_s": float(data.duration),
            "cpu_power_w": float(data.cpu_power),
            "country": data.country_name,
            "tracking_mode": getattr(data, "tracking_mode", "machine"),
        }
        self._tracker = None

    def get_config(self):
        return {"country": self.country, "measure_power_secs": self.measure_power_secs}
