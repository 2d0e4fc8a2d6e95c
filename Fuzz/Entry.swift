// libFuzzer entry: compiled by Fuzz/build.sh together with Tests/HostileTests/FuzzEntries.swift
// and a generated `let fuzzTarget = "NAME"`, one binary per target in .build-fuzz/.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzEntries.run(fuzzTarget, bytes)
    return 0
}
