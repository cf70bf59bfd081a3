@testable import Capture
import XCTest

/// Format choice from fake capability sets shaped like what real cameras enumerate through libv4l2.
final class V4L2NegotiationTests: XCTestCase {
    /// A format offering each size at the listed frame rates.
    private func format(_ code: String, emulated: Bool = false, _ sizes: [(Int, Int, [UInt32])]) -> V4L2FormatCapability {
        V4L2FormatCapability(pixelFormat: V4L2PixelFormat(code), emulated: emulated, sizes: sizes.map { width, height, rates in
            V4L2FrameSize(size: V4L2Size(width: width, height: height),
                          intervals: rates.map { V4L2Interval(numerator: 1, denominator: $0) })
        })
    }

    private func mode(_ code: String, _ width: Int, _ height: Int, fps: UInt32?) -> V4L2Mode {
        V4L2Mode(pixelFormat: V4L2PixelFormat(code), size: V4L2Size(width: width, height: height),
                 interval: fps.map { V4L2Interval(numerator: 1, denominator: $0) })
    }

    /// libv4l2 adds these emulated formats for any camera whose native format libv4lconvert understands.
    private func emulated(_ sizes: [(Int, Int, [UInt32])]) -> [V4L2FormatCapability] {
        ["RGB3", "BGR3", "YU12", "YV12"].map { format($0, emulated: true, sizes) }
    }

    func testFourccCodesMatchTheKernelHeader() {
        XCTAssertEqual(V4L2PixelFormat.yuyv.rawValue, 0x5659_5559)  // v4l2_fourcc('Y','U','Y','V')
        XCTAssertEqual(V4L2PixelFormat.mjpeg.rawValue, 0x4750_4A4D)
        XCTAssertEqual(V4L2PixelFormat(rawValue: 0x3342_4752).description, "RGB3")
        XCTAssertEqual(V4L2PixelFormat(rawValue: 0x0000_0001).description, "0x1")
    }

    func testYUYVOnlyCamera() {
        let sizes: [(Int, Int, [UInt32])] = [(320, 240, [30, 15]), (640, 480, [30, 15]), (1280, 720, [10, 5])]
        let camera = [format("YUYV", sizes)] + emulated(sizes)
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: nil, height: nil, fps: nil), mode("YUYV", 640, 480, fps: 30))
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: nil, height: nil, fps: 15), mode("YUYV", 640, 480, fps: 15),
                       "the slowest rate that meets the request")
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1280, height: 720, fps: 30), mode("YUYV", 1280, 720, fps: 10),
                       "a rate nobody reaches falls back to the fastest offered")
    }

    func testMJPEGOnlyCameraAtHighResolutions() {
        let camera = [format("MJPG", [(1280, 720, [30, 15]), (1920, 1080, [30, 15]), (3840, 2160, [15])])]
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: nil, height: nil, fps: nil), mode("MJPG", 1280, 720, fps: 30),
                       "without VGA the default is the largest size within 1280x720")
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1920, height: 1080, fps: nil), mode("MJPG", 1920, 1080, fps: 30))
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 3840, height: 2160, fps: 30), mode("MJPG", 3840, 2160, fps: 15))
    }

    func testOnlySmallSizesDefaultsToTheLargestWithin720p() {
        let camera = [format("YUYV", [(160, 120, [30]), (352, 288, [30]), (320, 240, [30])])]
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: nil, height: nil, fps: nil), mode("YUYV", 352, 288, fps: 30))
    }

    /// A typical USB webcam: uncompressed YUYV is bandwidth-limited above VGA, MJPEG is not.
    func testMJPEGWinsWhereYUYVIsTooSlow() {
        let camera = [
            format("YUYV", [(640, 480, [30, 15]), (1280, 720, [10, 5]), (1920, 1080, [5])]),
            format("MJPG", [(640, 480, [30, 15]), (1280, 720, [30, 15]), (1920, 1080, [30, 15])]),
        ] + emulated([(640, 480, [30, 15]), (1280, 720, [30, 15]), (1920, 1080, [30, 15])])
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1280, height: 720, fps: 30), mode("MJPG", 1280, 720, fps: 30))
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1280, height: 720, fps: nil), mode("MJPG", 1280, 720, fps: 30),
                       "without a requested rate the aim is 30 fps")
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1280, height: 720, fps: 10), mode("YUYV", 1280, 720, fps: 10),
                       "YUYV is preferred when it keeps up")
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 640, height: 480, fps: 30), mode("YUYV", 640, 480, fps: 30))
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: nil, height: nil, fps: nil), mode("YUYV", 640, 480, fps: 30))
    }

    func testNTSCRatesCountAsTheirRoundNumber() {
        let ntsc = V4L2Interval(numerator: 1001, denominator: 30000)
        let camera = [
            V4L2FormatCapability(pixelFormat: .yuyv, emulated: false,
                                 sizes: [V4L2FrameSize(size: V4L2Size(width: 640, height: 480), intervals: [ntsc])]),
            format("MJPG", [(640, 480, [60, 30])]),
        ]
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 640, height: 480, fps: 30)?.interval, ntsc)
    }

    func testExoticFormatGoesThroughLibv4lconvertAsRGB24() {
        let bayer: [(Int, Int, [UInt32])] = [(640, 480, [30]), (1280, 1024, [15])]
        let camera = [format("BA81", bayer)] + emulated(bayer)
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: nil, height: nil, fps: nil), mode("RGB3", 640, 480, fps: 30))
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1280, height: 1024, fps: nil), mode("RGB3", 1280, 1024, fps: 15))
    }

    func testFormatsNothingCanConvertAreRefused() {
        XCTAssertNil(V4L2Negotiation.choose(from: [format("H264", [(1920, 1080, [30])])], width: nil, height: nil, fps: nil),
                     "libv4lconvert offers no emulated formats for H.264")
        XCTAssertNil(V4L2Negotiation.choose(from: [], width: nil, height: nil, fps: nil))
        XCTAssertNil(V4L2Negotiation.choose(from: [format("YUYV", emulated: true, [(640, 480, [30])])],
                                            width: nil, height: nil, fps: nil),
                     "only a native YUYV is converted by Sightline itself")
    }

    func testSizeNotOfferedFallsBackToTheNearestArea() {
        let camera = [format("YUYV", [(320, 240, [30]), (640, 480, [30]), (1280, 720, [30]), (1920, 1080, [30])])]
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1000, height: 600, fps: nil)?.size,
                       V4L2Size(width: 640, height: 480))
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1600, height: 900, fps: nil)?.size,
                       V4L2Size(width: 1280, height: 720))
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 4000, height: 3000, fps: nil)?.size,
                       V4L2Size(width: 1920, height: 1080))
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1300, height: nil, fps: nil)?.size,
                       V4L2Size(width: 1280, height: 720), "one dimension alone picks the nearest in that dimension")
    }

    func testSizeOfferedOnlyByMJPEGSelectsMJPEG() {
        let camera = [format("YUYV", [(640, 480, [30])]), format("MJPG", [(640, 480, [30]), (1920, 1080, [30])])]
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: 1600, height: 900, fps: nil), mode("MJPG", 1920, 1080, fps: 30))
    }

    func testUnlistedIntervalsUseTheRequestedRate() {
        let camera = [format("YUYV", [(640, 480, [])])]
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: nil, height: nil, fps: 25)?.interval,
                       V4L2Interval(numerator: 1000, denominator: 25000))
        XCTAssertEqual(V4L2Negotiation.choose(from: camera, width: nil, height: nil, fps: nil), mode("YUYV", 640, 480, fps: nil),
                       "no request and no list: the driver keeps its own rate")
    }

    func testStepwiseRangesBecomeCandidatesAroundTheRequest() {
        let sizes = V4L2Negotiation.sizes(from: V4L2Size(width: 16, height: 16), to: V4L2Size(width: 1920, height: 1080),
                                          step: V4L2Size(width: 8, height: 8), width: 1001, height: 601)
        XCTAssertEqual(sizes, [V4L2Size(width: 1000, height: 600), V4L2Size(width: 640, height: 480),
                               V4L2Size(width: 1280, height: 720), V4L2Size(width: 16, height: 16),
                               V4L2Size(width: 1920, height: 1080)])
        let small = V4L2Negotiation.sizes(from: V4L2Size(width: 64, height: 64), to: V4L2Size(width: 320, height: 240),
                                          step: V4L2Size(width: 1, height: 1), width: nil, height: nil)
        XCTAssertEqual(small, [V4L2Size(width: 320, height: 240), V4L2Size(width: 64, height: 64)],
                       "defaults beyond the range clamp to its end")

        let fastest = V4L2Interval(numerator: 1, denominator: 60), slowest = V4L2Interval(numerator: 1, denominator: 1)
        XCTAssertEqual(V4L2Negotiation.intervals(from: fastest, to: slowest, fps: 24),
                       [fastest, slowest, V4L2Interval(framesPerSecond: 24)])
        XCTAssertEqual(V4L2Negotiation.intervals(from: fastest, to: slowest, fps: 120), [fastest, slowest])
    }
}
