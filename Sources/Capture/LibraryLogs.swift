import CFFmpeg

/// libav prints its own diagnostics to stderr; Sightline reports every failure itself, once, naming the input,
/// so libav stays quiet. Set SIGHTLINE_FFMPEG_LOG=1 to see libav's messages when debugging a stream; passwords in
/// the URLs they quote are masked.
enum LibraryLogs {
    static let configured: Void = {
        let verbose = getenv("SIGHTLINE_FFMPEG_LOG").map { String(cString: $0) == "1" } ?? false
        av_log_set_level(verbose ? AV_LOG_INFO : AV_LOG_QUIET)
        sl_install_redacting_log()
    }()
}
