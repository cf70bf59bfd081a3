/// Maps a network stream's timestamps to the local clock, so that a frame that arrives late carries its age.
///
/// After a stall, the network and decoder release what they held in a burst; stamped with the time they were
/// decoded, those frames would look fresh while showing the scene of seconds ago. The clock keeps the smallest
/// `arrival - pts` seen (when frames arrive with the least delay): a frame's age is how much later than that it came.
/// The offset may creep up slowly, so a sender whose clock runs slow against ours is not taken for ever later.
struct StreamClock {
    /// The least `arrival - pts` seen, allowing for drift; nil before the first frame.
    private var offset: Double?
    private var lastPTS = 0.0
    private var lastArrival = 0.0

    /// How fast the offset may rise, in seconds per second: 1000 ppm, ten times a poor crystal's drift.
    static let drift = 0.001
    /// Timestamps going back by more than this mean the stream restarted: the clock starts over.
    static let backwardJump = 1.0
    /// Ages are capped (a day): beyond that a timestamp says nothing about when the frame was captured.
    static let longestAge = 86_400.0

    /// How long ago, in seconds, the frame with timestamp `pts` (seconds) should have arrived, given that it
    /// arrived at `arrival` (seconds on any monotonic clock). 0 for a frame on time.
    mutating func age(pts: Double, arrival: Double) -> Double {
        // A stream with no usable time base gives no age rather than a nonsense one.
        guard pts.isFinite, arrival.isFinite else { return 0 }
        let sample = arrival - pts
        if let offset, pts >= lastPTS - Self.backwardJump {
            self.offset = min(sample, offset + max(0, arrival - lastArrival) * Self.drift)
        } else {
            offset = sample
        }
        lastPTS = pts
        lastArrival = arrival
        return min(max(0, sample - (offset ?? sample)), Self.longestAge)
    }
}
