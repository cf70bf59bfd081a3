/// The wait before retrying something that keeps failing (a source, the MQTT broker): 1, 2, 4 ... seconds up to
/// `ceiling`, each scaled by a factor in [0.8, 1.2) so that clients which fail together do not retry together.
public enum Backoff {
    /// The factor comes from the top 53 bits of one draw of `random`, so a seeded generator gives a repeatable wait.
    public static func seconds(failures: Int, ceiling: Double, random: inout some RandomNumberGenerator) -> Double {
        let unit = Double(random.next() >> 11) / Double(UInt64(1) << 53)
        return base(failures: failures, ceiling: ceiling) * (0.8 + 0.4 * unit)
    }

    /// The wait before its jitter: 1, 2, 4 ... seconds, at most `ceiling`.
    public static func base(failures: Int, ceiling: Double) -> Double {
        min(ceiling, Double(UInt64(1) << UInt64(min(max(failures, 1) - 1, 32))))
    }
}
