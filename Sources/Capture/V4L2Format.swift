import Foundation

// Choosing a camera's pixel format, frame size and frame interval from what it enumerates:
// pure data in and out, so the choice is testable without hardware.

/// A V4L2 pixel format code: four ASCII characters packed little-endian, as `v4l2_fourcc` does.
struct V4L2PixelFormat: RawRepresentable, Hashable, CustomStringConvertible, Sendable {
    let rawValue: UInt32

    init(rawValue: UInt32) { self.rawValue = rawValue }

    init(_ code: String) {
        precondition(code.utf8.count == 4, "a fourcc has four characters")
        rawValue = code.utf8.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    static let yuyv = V4L2PixelFormat("YUYV")
    static let mjpeg = V4L2PixelFormat("MJPG")
    /// Plain JPEG frames; some cameras label their motion-JPEG stream this way.
    static let jpeg = V4L2PixelFormat("JPEG")
    /// Packed RGB24: what libv4lconvert produces from formats Sightline does not convert itself.
    static let rgb24 = V4L2PixelFormat("RGB3")

    var isMotionJPEG: Bool { self == .mjpeg || self == .jpeg }

    var description: String {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: rawValue >> ($0 * 8)) }
        guard bytes.allSatisfy({ (0x20..<0x7f).contains($0) }) else { return "0x" + String(rawValue, radix: 16) }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }
}

struct V4L2Size: Hashable, CustomStringConvertible, Sendable {
    var width: Int
    var height: Int
    var area: Int { width * height }
    var description: String { "\(width)x\(height)" }
}

/// Seconds per frame as V4L2 states it (a fraction, so 1/30 stays exact).
struct V4L2Interval: Hashable, Sendable {
    var numerator: UInt32
    var denominator: UInt32

    var framesPerSecond: Double { Double(denominator) / Double(numerator) }

    init(numerator: UInt32, denominator: UInt32) {
        self.numerator = numerator
        self.denominator = denominator
    }

    /// Millisecond-frame precision keeps NTSC rates such as 29.97 intact.
    init(framesPerSecond fps: Double) {
        self.init(numerator: 1000, denominator: UInt32((fps * 1000).rounded()))
    }
}

/// One frame size a format offers, with the intervals it offers at that size
/// (empty when the driver does not enumerate intervals).
struct V4L2FrameSize: Hashable, Sendable {
    var size: V4L2Size
    var intervals: [V4L2Interval]
}

/// One pixel format as VIDIOC_ENUM_FMT reports it through libv4l2.
struct V4L2FormatCapability: Hashable, Sendable {
    var pixelFormat: V4L2PixelFormat
    /// Offered by libv4lconvert (V4L2_FMT_FLAG_EMULATED) rather than by the camera itself.
    var emulated: Bool
    var sizes: [V4L2FrameSize]
}

/// What to ask the driver for.
struct V4L2Mode: Hashable, Sendable {
    var pixelFormat: V4L2PixelFormat
    var size: V4L2Size
    /// nil when no rate was requested and the driver lists none: keep the driver's own.
    var interval: V4L2Interval?
}

enum V4L2Negotiation {
    /// Frame rate aimed for when none is requested: enough for detection, and what most cameras default to.
    static let defaultFramesPerSecond = 30.0
    /// Rates within 2% count as equal, so a requested 30 accepts a camera's 29.97.
    private static let rateTolerance = 0.98

    /// The mode to request for `width`/`height`/`fps` (each optional), or nil when no offered format is usable.
    ///
    /// The size is the request if any usable format offers it, else the offered size closest in area;
    /// without a request, 640x480, else the largest size within 1280x720, else the smallest.
    /// Formats are then tried in the order YUYV, motion JPEG, RGB24 (native, or converted by libv4lconvert
    /// from whatever else the camera delivers); the first that reaches the wanted rate at that size wins.
    /// The wanted rate is the request (or 30 fps), lowered to the best any usable format reaches at the size.
    static func choose(from formats: [V4L2FormatCapability], width: Int?, height: Int?, fps: Double?) -> V4L2Mode? {
        let usable = formats.filter { rank($0) != nil }.sorted { rank($0)! < rank($1)! }
        let sizes = Set(usable.flatMap { $0.sizes.map(\.size) })
        guard let size = chooseSize(among: sizes, width: width, height: height) else { return nil }

        let wanted = fps ?? defaultFramesPerSecond
        let reachable = usable.compactMap { bestRate(of: $0, at: size) }.max() ?? wanted
        let goal = min(wanted, reachable) * rateTolerance
        guard let format = usable.first(where: { (bestRate(of: $0, at: size) ?? -1) >= goal }) else { return nil }

        let intervals = format.sizes.first { $0.size == size }?.intervals ?? []
        let interval: V4L2Interval?
        if intervals.isEmpty {
            interval = fps.map(V4L2Interval.init(framesPerSecond:))
        } else {
            // The slowest rate that still meets the goal: faster only costs USB bandwidth and CPU.
            interval = intervals.filter { $0.framesPerSecond >= goal }.min { $0.framesPerSecond < $1.framesPerSecond }
        }
        // libv4l2 delivers every non-native format as RGB24, so ask for that whatever the camera sends.
        let pixelFormat = format.pixelFormat == .yuyv || format.pixelFormat.isMotionJPEG ? format.pixelFormat : .rgb24
        return V4L2Mode(pixelFormat: pixelFormat, size: size, interval: interval)
    }

    /// Preference order; nil for formats reached only through libv4lconvert's emulated RGB24.
    private static func rank(_ format: V4L2FormatCapability) -> Int? {
        switch format.pixelFormat {
        case .yuyv where !format.emulated: 0
        case .mjpeg where !format.emulated, .jpeg where !format.emulated: 1
        case .rgb24: 2
        default: nil
        }
    }

    /// Fastest rate `format` offers at `size`; infinity when it offers the size without listing rates; nil when not offered.
    private static func bestRate(of format: V4L2FormatCapability, at size: V4L2Size) -> Double? {
        guard let offered = format.sizes.first(where: { $0.size == size }) else { return nil }
        return offered.intervals.map(\.framesPerSecond).max() ?? .infinity
    }

    private static func chooseSize(among sizes: Set<V4L2Size>, width: Int?, height: Int?) -> V4L2Size? {
        // Sorted so ties resolve the same way every time.
        let sizes = sizes.sorted { ($0.area, $0.width) > ($1.area, $1.width) }
        switch (width, height) {
        case let (width?, height?):
            let wanted = V4L2Size(width: width, height: height)
            return sizes.min { abs($0.area - wanted.area) < abs($1.area - wanted.area) }
        case let (width?, nil):
            return sizes.min { abs($0.width - width) < abs($1.width - width) }
        case let (nil, height?):
            return sizes.min { abs($0.height - height) < abs($1.height - height) }
        case (nil, nil):
            let vga = V4L2Size(width: 640, height: 480)
            if sizes.contains(vga) { return vga }
            return sizes.first { $0.width <= 1280 && $0.height <= 720 } ?? sizes.last
        }
    }

    /// Discrete sizes standing in for a stepwise or continuous range, so the choice above can treat every driver alike:
    /// the request and the defaults, fitted to the range, plus its ends.
    static func sizes(from minimum: V4L2Size, to maximum: V4L2Size, step: V4L2Size, width: Int?, height: Int?) -> [V4L2Size] {
        func fit(_ value: Int, _ low: Int, _ high: Int, _ step: Int) -> Int {
            let clamped = min(max(value, low), high)
            return step > 1 ? low + (clamped - low) / step * step : clamped
        }
        let wanted = [V4L2Size(width: width ?? 640, height: height ?? 480), V4L2Size(width: 640, height: 480),
                      V4L2Size(width: 1280, height: 720), minimum, maximum]
        var seen = Set<V4L2Size>()
        return wanted.map {
            V4L2Size(width: fit($0.width, minimum.width, maximum.width, step.width),
                     height: fit($0.height, minimum.height, maximum.height, step.height))
        }.filter { seen.insert($0).inserted }
    }

    /// Discrete intervals standing in for a stepwise or continuous range: its ends and the requested rate if inside.
    static func intervals(from fastest: V4L2Interval, to slowest: V4L2Interval, fps: Double?) -> [V4L2Interval] {
        var intervals = [fastest, slowest]
        if let fps, (slowest.framesPerSecond...fastest.framesPerSecond).contains(fps) {
            intervals.append(V4L2Interval(framesPerSecond: fps))
        }
        return intervals
    }
}
