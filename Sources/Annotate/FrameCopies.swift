import Foundation
import Synchronization
import Values

/// Copies of decoded frames, held from detection until their record leaves the ordered sink, where the record's
/// final detections (with track ids) are drawn on the copy. The copy is taken on the worker thread before the
/// pipeline recycles the frame; copies come from a pool, so a steady stream allocates no pixel memory.
public final class FrameCopies: Sendable {
    private struct Key: Hashable {
        var source: String
        var frame: Int
    }

    private let held = Mutex<[Key: PixelBuffer]>([:])
    private let pool: PixelBufferPool
    /// Bounds the copies held at once: records that never come out (a removed source) cannot pile up.
    public let capacity: Int

    public init(capacity: Int = 32) {
        self.capacity = capacity
        pool = PixelBufferPool(keep: capacity)
    }

    /// Copies the frame's pixels; false (nothing copied) when `capacity` copies are already held.
    @discardableResult
    public func keep(_ frame: Frame) -> Bool {
        let key = Key(source: frame.sourceID, frame: frame.sequence)
        let full = held.withLock { held -> Bool in
            if held.count >= capacity {
                // Copies of earlier frames of the same source will not be asked for any more: their records are out.
                for stale in held.keys where stale.source == key.source && stale.frame < key.frame {
                    held.removeValue(forKey: stale)?.recycle()
                }
            }
            return held.count >= capacity
        }
        guard !full else { return false }
        let copy = pool.take(width: frame.width, height: frame.height)
        copy.bytes.copyMemory(from: frame.pixels.bytes, byteCount: frame.pixels.rowBytes * frame.height)
        held.withLock { $0.updateValue(copy, forKey: key) }?.recycle()
        return true
    }

    /// The copy of that frame, if one was kept; the caller gives it back with `recycle()` when done.
    public func take(source: String, frame: Int) -> PixelBuffer? {
        held.withLock { $0.removeValue(forKey: Key(source: source, frame: frame)) }
    }

    /// How many copies are held.
    public var count: Int { held.withLock { $0.count } }
}
