package sas

import "testing"

func BenchmarkVerify(b *testing.B) {
	for b.Loop() {
		tok, err := Parse(tokNode)
		if err != nil {
			b.Fatal(err)
		}
		if err := tok.Verify(vectorKey, seTime, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeriveDeviceKey(b *testing.B) {
	const group = "oiK77Oy7rBw8YB6IS6ukRChAw+Yq6GC61RMrPLSTiOOtdI+XDu0LmLuNm11p+qv2I+adqGUdZHm46zXAQdZoOA=="
	for b.Loop() {
		if _, err := DeriveDeviceKey(group, "breakroom499-contoso-tstrsd-007"); err != nil {
			b.Fatal(err)
		}
	}
}
