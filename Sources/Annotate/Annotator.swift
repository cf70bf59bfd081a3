import Values

/// An 8-bit RGB colour.
public struct RGB: Sendable, Equatable {
    public var r, g, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { (self.r, self.g, self.b) = (r, g, b) }
}

/// Draws detections onto an RGB frame in place: each box as an outline, with a caption (label, score, track id)
/// on a filled strip above it. Plain loops over the pixel rows; nothing is allocated but the caption strings.
public enum Annotator {
    /// Saturated colours that stay apart after JPEG's chroma subsampling; an object keeps its colour by track id.
    public static let palette: [RGB] = [
        RGB(0, 255, 0), RGB(255, 48, 48), RGB(48, 128, 255), RGB(255, 220, 0),
        RGB(255, 0, 255), RGB(0, 230, 230), RGB(255, 140, 0), RGB(160, 80, 255),
    ]

    /// What a box of `detection` says, e.g. `person 0.87 #12`.
    public static func caption(_ detection: Detection) -> String {
        let score = Int((detection.score * 100).rounded())
        let scoreText = score >= 100 ? "1.00" : "0.\(score < 10 ? "0" : "")\(score)"
        return "\(detection.label) \(scoreText)" + (detection.trackID.map { " #\($0)" } ?? "")
    }

    /// Outline thickness for a frame `width` pixels wide: 2 px up to 640, thicker for larger frames.
    public static func lineWidth(frameWidth width: Int) -> Int { max(2, width / 320) }

    /// Draws every detection onto `pixels`; one with a track id keeps its colour across frames.
    public static func draw(_ detections: [Detection], on pixels: PixelBuffer) {
        for detection in detections {
            let color = palette[(detection.trackID ?? detection.classID) & (palette.count - 1)]
            drawBox(detection, color: color, caption: caption(detection), on: pixels)
        }
    }

    /// The pixel rectangle (inclusive bounds) a normalized box covers, clipped to the frame; nil if it is empty or not finite.
    static func pixelRect(xmin: Float, ymin: Float, xmax: Float, ymax: Float, width: Int, height: Int)
        -> (x0: Int, y0: Int, x1: Int, y1: Int)? {
        guard xmin.isFinite, ymin.isFinite, xmax.isFinite, ymax.isFinite, width > 0, height > 0 else { return nil }
        func column(_ v: Float) -> Int { Int(max(0, min(Float(width), (v * Float(width)).rounded()))) }
        func row(_ v: Float) -> Int { Int(max(0, min(Float(height), (v * Float(height)).rounded()))) }
        let (x0, x1, y0, y1) = (column(min(xmin, xmax)), column(max(xmin, xmax)) - 1, row(min(ymin, ymax)), row(max(ymin, ymax)) - 1)
        guard x1 >= x0, y1 >= y0 else { return nil }
        return (x0, y0, x1, y1)
    }

    static func drawBox(_ detection: Detection, color: RGB, caption: String, on pixels: PixelBuffer) {
        guard let rect = pixelRect(xmin: detection.xmin, ymin: detection.ymin, xmax: detection.xmax, ymax: detection.ymax,
                                   width: pixels.width, height: pixels.height) else { return }
        // The outline lies inside the box, so its outer edge is the box's edge.
        let line = min(lineWidth(frameWidth: pixels.width), (rect.x1 - rect.x0 + 2) / 2, (rect.y1 - rect.y0 + 2) / 2)
        fill(x0: rect.x0, y0: rect.y0, x1: rect.x1, y1: rect.y0 + line - 1, color: color, on: pixels)
        fill(x0: rect.x0, y0: rect.y1 - line + 1, x1: rect.x1, y1: rect.y1, color: color, on: pixels)
        fill(x0: rect.x0, y0: rect.y0, x1: rect.x0 + line - 1, y1: rect.y1, color: color, on: pixels)
        fill(x0: rect.x1 - line + 1, y0: rect.y0, x1: rect.x1, y1: rect.y1, color: color, on: pixels)

        let scale = max(1, pixels.height / 600)
        let stripHeight = (Glyphs.height + 2) * scale
        let stripWidth = (caption.utf8.count * Glyphs.width + 4) * scale
        // Above the box when there is room, else just inside its top edge.
        let top = rect.y0 >= stripHeight ? rect.y0 - stripHeight : rect.y0
        fill(x0: rect.x0, y0: top, x1: rect.x0 + stripWidth - 1, y1: top + stripHeight - 1, color: color, on: pixels)
        let luma = 299 * Int(color.r) + 587 * Int(color.g) + 114 * Int(color.b)
        let ink = luma > 128_000 ? RGB(0, 0, 0) : RGB(255, 255, 255)
        text(caption, x: rect.x0 + 2 * scale, y: top + scale, scale: scale, color: ink, on: pixels)
    }

    /// Fills the rectangle with inclusive bounds, clipped to the frame.
    static func fill(x0: Int, y0: Int, x1: Int, y1: Int, color: RGB, on pixels: PixelBuffer) {
        let (left, right) = (max(0, x0), min(pixels.width - 1, x1))
        let (top, bottom) = (max(0, y0), min(pixels.height - 1, y1))
        guard left <= right, top <= bottom else { return }
        for y in top...bottom {
            var p = pixels.bytes.assumingMemoryBound(to: UInt8.self) + y * pixels.rowBytes + left * 3
            for _ in left...right {
                p[0] = color.r
                p[1] = color.g
                p[2] = color.b
                p += 3
            }
        }
    }

    /// Draws printable ASCII with the built-in 8x13 font (other characters as `?`), each glyph pixel `scale` pixels square.
    static func text(_ text: String, x: Int, y: Int, scale: Int, color: RGB, on pixels: PixelBuffer) {
        var left = x
        for var code in text.utf8 {
            if code < Glyphs.first || code > 126 { code = UInt8(ascii: "?") }
            let glyph = Int(code - Glyphs.first) * Glyphs.height
            for row in 0..<Glyphs.height {
                let bits = Glyphs.rows[glyph + row]
                guard bits != 0 else { continue }
                for column in 0..<Glyphs.width where bits & (0x80 >> column) != 0 {
                    let px = left + column * scale, py = y + row * scale
                    fill(x0: px, y0: py, x1: px + scale - 1, y1: py + scale - 1, color: color, on: pixels)
                }
            }
            left += Glyphs.width * scale
        }
    }
}
