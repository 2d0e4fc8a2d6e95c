import DiskImage

/// A block decompressor: one compressed block in, its decompressed bytes out.
///
/// Filesystem readers (squashfs, EROFS) decompress blocks whose decompressed size they know an
/// upper bound of; `output` is sized by that bound, never by a field of the compressed data.
public protocol Decompressor: Sendable {
    /// Name as the filesystem calls it: "gzip", "xz", "lzma", "lzo", "lz4", "zstd", "microlzma".
    var name: String { get }
    /// Decompresses `input` into `output`; returns the number of bytes written. Throws `.corrupt`
    /// when the data is invalid or does not fit in `output`.
    func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int
}

extension Decompressor {
    /// The checks every block decoder makes before it calls its C library: a block that is not
    /// empty and room for output. Returns their base addresses.
    func buffers(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer) throws
        -> (source: UnsafeRawPointer, destination: UnsafeMutableRawPointer) {
        guard let src = input.baseAddress, input.count > 0 else {
            throw FWError.corrupt("\(name): empty compressed block")
        }
        guard let dst = output.baseAddress, output.count > 0 else {
            throw FWError.corrupt("\(name): no room for output")
        }
        return (src, dst)
    }

    /// The block's and the output's lengths in the C library's length type, or `.limitExceeded`.
    func lengths<Length: FixedWidthInteger>(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer,
                                            as: Length.Type) throws -> (input: Length, output: Length) {
        guard let inputLength = Length(exactly: input.count), let outputLength = Length(exactly: output.count) else {
            throw FWError(.limitExceeded, "\(name): block of \(input.count) bytes is too large")
        }
        return (inputLength, outputLength)
    }

    /// Convenience over arrays, for tests and small metadata blocks.
    public func decompress(_ input: [UInt8], maximumOutput: Int) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: maximumOutput)
        let n = try input.withUnsafeBytes { inp in
            try output.withUnsafeMutableBytes { try decompress(inp, into: $0) }
        }
        output.removeSubrange(n...)
        return output
    }
}
