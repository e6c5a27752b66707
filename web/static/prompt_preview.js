// Prompts page: hear a typed number, amount, date or code as the phone says it.
// The server composes one WAV from the current fragments; this plays it in place and shows
// the fragments used. Without JavaScript the form still opens the WAV.
(function () {
  "use strict";
  var form = document.getElementById("preview-form");
  var result = document.getElementById("preview-result");
  if (!form || !result) { return; }
  var audio = null;

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var url = form.action + "?" + new URLSearchParams(new FormData(form)).toString();
    result.textContent = "…";
    fetch(url, { credentials: "same-origin" }).then(function (resp) {
      if (!resp.ok) {
        return resp.text().then(function (text) { result.textContent = text; });
      }
      var names = resp.headers.get("X-Fragments") || "";
      result.textContent = names;
      if (audio) { audio.pause(); }
      // Played from the same URL (not a blob:) so a strict Content-Security-Policy allows it.
      audio = new Audio(url);
      audio.play().catch(function () {
        result.textContent = names + " — پخش ممکن نشد.";
      });
    }).catch(function () {
      result.textContent = "پاسخی از سرور نرسید.";
    });
  });
}());
