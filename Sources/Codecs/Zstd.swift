internal import CZstd
import DiskImage

/// Zstandard frames (RFC 8878), as squashfs's "zstd" compressor stores each block.
///
/// Wraps libzstd's one-shot `ZSTD_decompress`, which never writes past the output (a frame that
/// would is an error) and checks the frame's content size and checksum when present.
public struct Zstd: Decompressor {
    public let name = "zstd"
    /// Whether only the first frame is decoded and the bytes after it ignored (btrfs pads a
    /// compressed extent to its sector size) instead of decoding them as further frames.
    public let firstFrameOnly: Bool

    public init(firstFrameOnly: Bool = false) {
        self.firstFrameOnly = firstFrameOnly
    }

    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let (src, dst) = try buffers(input, output)
        var length = input.count
        if firstFrameOnly {
            let frame = ZSTD_findFrameCompressedSize(src, input.count)
            if ZSTD_isError(frame) != 0 {
                let reason = ZSTD_getErrorName(frame).map { String(cString: $0) } ?? "unknown error"
                throw FWError.corrupt("zstd: no complete frame in the \(input.count)-byte block: \(reason)")
            }
            length = frame
        }
        let ret = ZSTD_decompress(dst, output.count, src, length)
        if ZSTD_isError(ret) != 0 {
            let reason = ZSTD_getErrorName(ret).map { String(cString: $0) } ?? "unknown error"
            throw FWError.corrupt("zstd: corrupt compressed block (\(input.count) bytes) or output over \(output.count) bytes: \(reason)")
        }
        guard ret <= output.count else {
            throw FWError.corrupt("zstd: decoder reported \(ret) bytes for a \(output.count)-byte buffer")
        }
        return ret
    }
}
