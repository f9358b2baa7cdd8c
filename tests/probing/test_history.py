from nnunet_mae.probing.history import ProbeHistory, ProbeRecord


def record(epoch, mean):
    return ProbeRecord(epoch=epoch, iterations=0, train_seconds=0.0, dice=[mean, mean], probe_seconds=1.0)


def test_stops_paying_when_the_last_probes_gain_no_more_than_the_noise():
    history = ProbeHistory(noise=0.02)
    for epoch, mean in [(-1, 0.30), (9, 0.40), (19, 0.45), (29, 0.46), (39, 0.455)]:
        history.add(record(epoch, mean))
    assert history.stopped_paying(patience=2)  # 0.46 <= 0.45 + 0.02
    assert not history.stopped_paying(patience=3)  # 0.46 > 0.40 + 0.02
    assert history.best().epoch == 29


def test_no_signal_without_a_measured_noise_or_enough_probes():
    history = ProbeHistory()
    for epoch in range(-1, 50, 10):
        history.add(record(epoch, 0.3))
    assert not history.stopped_paying(2)
    history.noise = 0.01
    assert history.stopped_paying(2)
    assert not history.stopped_paying(len(history.records))


def test_round_trip_and_one_record_per_epoch():
    history = ProbeHistory(noise=0.01, noise_seeds=[0.3, 0.31], stop_epoch=19)
    history.add(record(9, 0.4))
    history.add(record(-1, 0.3))
    history.add(record(9, 0.5))  # the same epoch probed again (a resumed run) replaces it
    again = ProbeHistory.from_dict(history.to_dict())
    assert [r.epoch for r in again.records] == [-1, 9] and again.records[1].mean == 0.5
    assert again.noise == 0.01 and again.stop_epoch == 19 and again.baseline.mean == 0.3
    assert ProbeHistory.from_dict(None).records == []
