/* Small behaviours every console page may use, declared with data- attributes instead of inline
   handlers (the Content-Security-Policy allows no inline script):
   - data-submit-on-change on a select or input: submit its form when the value changes;
   - data-print on a button: open the browser's print dialog. */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field && field.form && field.hasAttribute("data-submit-on-change")) { field.form.submit(); }
  });
  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("[data-print]") : null;
    if (button) { window.print(); }
  });
})();
